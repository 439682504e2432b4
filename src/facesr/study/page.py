"""The study page: one self-contained HTML file (images as data URIs, inline CSS and JS).

The page holds only what a rater may see: image ids, the input (optional) and each output's
opaque token and pixels. Method names are never passed in. Rankings are saved by the page as
a JSON download (``facesr-study-rankings``, version 1)::

    {"format": "facesr-study-rankings", "version": 1, "study": "<id>", "rater": "<name>",
     "saved": "<ISO time>", "rankings": [{"image": "<stem>", "ranking": ["<token>", ...]}]}

``ranking`` lists tokens best first.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from facesr.io import encode_image, read_image_array
from facesr.study._assets import SCRIPT, STYLE, TEMPLATE

RANKINGS_FORMAT = "facesr-study-rankings"
RANKINGS_VERSION = 1


@dataclass(frozen=True)
class PageItem:
    """One image as shown: the input's data URI (or None) and (token, data URI) per option,
    in letter order."""

    image: str
    lr: str | None
    options: tuple[tuple[str, str], ...]


def png_data_uri(path: str | os.PathLike) -> tuple[str, tuple[int, int]]:
    """An image file as a ``data:image/png;base64,...`` URI and its (height, width).

    The pixels are decoded and re-encoded as 8-bit PNG, so no metadata of the file (which could
    name the method that wrote it) reaches the page.
    """
    rgb = read_image_array(path)
    try:
        data = encode_image(rgb, ".png", png_compression=9)
    except OSError as e:
        raise OSError(f"{path}: {e}") from None
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return uri, (rgb.shape[0], rgb.shape[1])


def render_page(study_id: str, items: Sequence[PageItem], *, size: int = 256,
                title: str = "Which face looks best?") -> str:
    """The HTML text of the study page.

    Args:
        study_id: written into every rankings file the page saves.
        items: the images, in page order.
        size: initial display width of each picture in CSS px (the rater can change it).
        title: the page heading.
    """
    data = {"format": RANKINGS_FORMAT, "version": RANKINGS_VERSION, "study": study_id,
            "size": int(size),
            "items": [{"image": it.image, "lr": it.lr,
                       "options": [{"token": t, "src": s} for t, s in it.options]}
                      for it in items]}
    # "<" escaped so no text in the data can close the <script> element
    blob = json.dumps(data, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    parts = {"title": html.escape(title), "study": html.escape(study_id), "style": STYLE,
             "data": blob, "script": SCRIPT}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], TEMPLATE)
