"""avse: audio-visual speech enhancement and separation."""

__version__ = "0.1.0"

SAMPLE_RATE = 16_000
VIDEO_FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640
