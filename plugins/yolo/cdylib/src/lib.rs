//! The `yolo` detector of [`acbench_yolo`] as a plugin library
//! (`libacbench_detector_yolo.so`) that acbench loads at run time through
//! the C ABI; acbench itself links `acbench_yolo`.

acbench_plugin_api::export_detectors!(acbench_yolo::detectors);
