"""Video: decoding and writing (PyAV), face detection and landmarks, tracking, mouth crops, lip features, A/V sync."""
