//! The per-channel activations of [`acbench_per_channel`] as a plugin library
//! (`libacbench_plugin_per_channel.so`) that acbench loads at run time through the C
//! ABI, like any plugin; acbench itself links `acbench_per_channel`.

acbench_plugin_api::export_plugin!(acbench_per_channel::activations);
