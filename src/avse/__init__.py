"""avse: audio-visual speech enhancement and separation."""

__version__ = "0.1.0"

SAMPLE_RATE = 16_000
VIDEO_FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640
#: what a model's visual input is: the front end's lip features (``avse.video.lipfeat``, 82 a frame) or the
#: embeddings of Light-ASD's frozen visual encoder (``avse.models.light_asd``, 128 a frame; its weights are the user's)
VISUAL_STREAMS = ("lip_features", "light_asd")
