//! ASigmoid, ATanh and AReLU of [`acbench_adaptive`] as a plugin library
//! (`libacbench_plugin_adaptive.so`) that acbench loads at run time through the C
//! ABI, like any plugin; acbench itself links `acbench_adaptive`.

acbench_plugin_api::export_plugin!(acbench_adaptive::activations);
