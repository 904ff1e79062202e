"""sen.calibration: fit, judge and version calibration curves."""
