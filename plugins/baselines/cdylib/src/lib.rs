//! The baseline activations of [`acbench_baselines`] as a plugin library
//! (`libacbench_plugin_baselines.so`) that acbench loads at run time through the C
//! ABI, like any plugin; acbench itself links `acbench_baselines`.

acbench_plugin_api::export_plugin!(acbench_baselines::activations);
