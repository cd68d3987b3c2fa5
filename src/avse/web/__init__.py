"""The browser UI, ``avse ui``: upload a recording, check the face, run enhancement or separation, listen, compare, download."""

import os

from avse.web.session import UiConfig, WorkArea

__all__ = ["UiConfig", "serve"]


def serve(cfg: UiConfig) -> None:
    """Run the UI with ``cfg`` until stopped (see ``avse.web.app.serve``).

    The work folder is made first, so that Gradio, imported only here, keeps
    every file it writes in it.
    """
    from avse.errors import ConfigError

    work = WorkArea()
    os.environ["GRADIO_TEMP_DIR"] = str(work.root)
    try:
        from avse.web.app import serve as _serve
    except ModuleNotFoundError as err:
        work.close()
        if err.name != "gradio":
            raise
        raise ConfigError("avse ui needs Gradio: pip install 'avse[ui]'") from None
    _serve(cfg, work)
