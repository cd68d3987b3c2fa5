"""The live preview: a window showing the camera frame, the followed face's box, its lip points and a mouth crop."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import cv2
import numpy as np

from avse.errors import ConfigError

FACE_COLOUR = (40, 220, 60)  # RGB: the face box while its lips are read
HELD_COLOUR = (250, 170, 30)  # the box while the last features are held (the mesh missed this frame)
UNUSABLE_COLOUR = (230, 50, 50)  # a face whose lip features cannot be used (the model runs audio-only)
POINT_COLOUR = (255, 255, 0)  # the lip points the model's features come from
STATE_COLOURS = {"face": FACE_COLOUR, "held": HELD_COLOUR, "unusable": UNUSABLE_COLOUR}
INSET_SCALE = 2  # the 96 x 96 mouth crop is shown at twice its size


def check_display() -> None:
    """ConfigError (one line) unless a window can be opened: an X display (DISPLAY; XWayland sets it too)."""
    if not os.environ.get("DISPLAY"):
        raise ConfigError("--preview needs a display and DISPLAY is not set (leave out --preview on a machine without one)")


def preview_image(
    frame: np.ndarray,
    box: np.ndarray | None = None,
    crop: np.ndarray | None = None,
    points: np.ndarray | None = None,
    state: str = "face",
    text: str = "",
    width: int = 640,
) -> np.ndarray:
    """What the preview window shows -> uint8 [h, w, 3] RGB.

    ``frame`` uint8 [H, W, 3] RGB, scaled to ``width`` pixels wide; ``box``
    float [4] x0, y0, x1, y1 in frame pixels (None: no face), drawn in the
    colour of ``state``: "face" green (its lips are read), "held" amber (the
    last features carried over a missed frame), "unusable" red (a face whose
    lip features cannot be used; "none" goes with no box); ``points`` float [P, 2] x, y in frame
    pixels (the lip points), drawn as dots; ``crop`` uint8 [96, 96] gray, the
    mouth crop, drawn at twice its size in the top right corner (None:
    none); ``text`` written at the bottom.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ConfigError(f"a preview frame must be uint8 [H, W, 3] RGB, got {frame.dtype} {frame.shape}")
    scale = width / frame.shape[1]
    if scale != 1.0:
        img = cv2.resize(frame, (width, round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    else:
        img = frame.copy()
    h, w = img.shape[:2]
    if box is not None and np.isfinite(box).all():
        x0, y0, x1, y1 = (int(round(float(v) * scale)) for v in box)
        cv2.rectangle(img, (x0, y0), (x1, y1), STATE_COLOURS[state], 2)
    if points is not None:
        for x, y in np.asarray(points, np.float64).reshape(-1, 2):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(img, (int(round(x * scale)), int(round(y * scale))), 1, POINT_COLOUR, -1)
    if crop is not None:
        size = crop.shape[0] * INSET_SCALE
        if size + 8 <= min(h, w):
            inset = cv2.resize(np.asarray(crop, np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
            x0 = w - size - 4
            img[2 : size + 6, x0 - 2 : x0 + size + 2] = 255  # a white frame around it
            img[4 : size + 4, x0 : x0 + size] = inset[..., None]
    if text:
        cv2.rectangle(img, (0, h - 22), (w, h), (0, 0, 0), -1)
        cv2.putText(img, text, (6, h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


class PreviewWindow:
    """A Tk window, in its own thread, showing the newest image given to ``show``.

    ``show(image uint8 [h, w, 3] RGB)`` only keeps the image (any thread, no
    waiting); the window's thread draws the newest one every ``interval_ms``.
    ``shown`` counts the images drawn. Closing the window ends the preview
    only (``closed``); ``stop()`` closes it. ``start()`` raises ConfigError when
    no window can be opened (no display, or Tk cannot reach it).
    """

    def __init__(self, title: str = "avse live", interval_ms: int = 15):
        self.title = title
        self.interval_ms = int(interval_ms)
        self.shown = 0
        self.closed = False
        self.error: str | None = None
        self.position: tuple[int, int] | None = None  # the image's top-left corner on the screen, once drawn
        self._slot: np.ndarray | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> PreviewWindow:
        """Open the window (its thread) and wait until it is up; returns self."""
        check_display()
        self._thread = threading.Thread(target=self._run, name="avse-preview", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ConfigError(f"the preview window did not open within {timeout:.0f} s")
        if self.error is not None:
            raise ConfigError(f"cannot open the preview window: {self.error}")
        return self

    def show(self, image: np.ndarray) -> None:
        """Hand the window a new image uint8 [h, w, 3] RGB (the newest replaces any not yet drawn)."""
        if not self.closed:
            with self._lock:
                self._slot = image

    def stop(self) -> None:
        """Close the window and wait for its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            import tkinter as tk

            root = tk.Tk()
        except Exception as err:  # no Tk, or the display refuses us: reported by start()
            self.error = " ".join(str(err).split()) or type(err).__name__
            self._ready.set()
            return
        root.title(self.title)
        root.protocol("WM_DELETE_WINDOW", lambda: setattr(self, "closed", True))
        photo: Any = None
        label = tk.Label(root, bd=0, text="waiting for the camera", width=40, height=10)
        label.pack()
        root.update()
        self._ready.set()
        try:
            while not self._stop.is_set() and not self.closed:
                with self._lock:
                    image, self._slot = self._slot, None
                if image is not None:
                    h, w = image.shape[:2]
                    data = b"P6 %d %d 255\n" % (w, h) + np.ascontiguousarray(image, np.uint8).tobytes()
                    if photo is None or (photo.width(), photo.height()) != (w, h):
                        photo = tk.PhotoImage(width=w, height=h)
                        label.configure(image=photo, width=w, height=h)
                    photo.configure(data=data, format="PPM")
                    root.update()
                    self.position = (label.winfo_rootx(), label.winfo_rooty())
                    self.shown += 1
                else:
                    root.update()
                time.sleep(self.interval_ms / 1000.0)
        except Exception as err:  # the window went away under us (the display closed)
            self.error = " ".join(str(err).split()) or type(err).__name__
        finally:
            self.closed = True
            try:
                root.destroy()
            except Exception:  # already gone with its display
                pass


__all__ = ["STATE_COLOURS", "PreviewWindow", "check_display", "preview_image"]
