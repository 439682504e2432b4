"""Blind ranking studies (Mean Opinion Rank) of super-resolution outputs.

- :mod:`~facesr.study.results`: read ``facesr evaluate`` outputs, pick the top methods;
- :mod:`~facesr.study.design`: shuffle the methods per image, opaque tokens, the key;
- :mod:`~facesr.study.page`: the self-contained HTML page raters use;
- :mod:`~facesr.study.score`: check saved rankings against the key, Mean Opinion Rank.

The commands are ``facesr study create`` and ``facesr study score``.
"""

from facesr.study.design import LETTERS, Study, StudyError, StudyItem, plan_study
from facesr.study.page import PageItem, png_data_uri, render_page
from facesr.study.results import (
    common_images,
    image_files,
    method_folders,
    metric_means,
    top_methods,
)
from facesr.study.score import (
    MethodRank,
    RankingError,
    RaterRankings,
    decode_rankings,
    mean_opinion_rank,
)

__all__ = ["LETTERS", "MethodRank", "PageItem", "RankingError", "RaterRankings", "Study",
           "StudyError", "StudyItem", "common_images", "decode_rankings", "image_files",
           "mean_opinion_rank", "method_folders", "metric_means", "plan_study", "png_data_uri",
           "render_page", "top_methods"]
