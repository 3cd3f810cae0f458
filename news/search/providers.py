"""The providers SEARCH_PROVIDERS can name, each built with its endpoint setting."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from news.search import Provider
from news.search.gdelt import Gdelt
from news.search.googlenews import GoogleNews

log = logging.getLogger(__name__)
KNOWN = ("gdelt", "googlenews")


def build(names: Sequence[str], endpoints: Mapping[str, str]) -> list[Provider]:
    """The providers named, in order; an unknown name is logged and left out."""
    made: list[Provider] = []
    for name in dict.fromkeys(names):
        if name == "gdelt":
            made.append(Gdelt(endpoints["gdelt"]))
        elif name == "googlenews":
            made.append(GoogleNews(endpoints["googlenews"]))
        else:
            log.warning("SEARCH_PROVIDERS names %r, which is none of %s; left out",
                        name, ", ".join(KNOWN))
    return made
