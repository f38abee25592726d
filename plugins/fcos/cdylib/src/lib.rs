//! The `fcos` detector of [`acbench_fcos`] as a plugin library
//! (`libacbench_detector_fcos.so`) that acbench loads at run time through
//! the C ABI; acbench itself links `acbench_fcos`.

acbench_plugin_api::export_detectors!(acbench_fcos::detectors);
