"""Video: decoding and writing (PyAV), and later the face/mouth front end."""
