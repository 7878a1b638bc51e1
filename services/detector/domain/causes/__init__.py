"""Why a deal was interrupted: cause signals from activity text (Japanese and English) and structured facts.

``Lexicon.load()`` compiles the wording in ``data/causes_lexicon.*.toml`` once; ``Lexicon.extract`` turns one
event's text into a few ``Signal``s (hot path: in C where ``_scan.c`` is built, one pass of a phrase trie and the
hits' context; an early exit when nothing matches); the detector keeps a few per deal (``rank_for_keeping``) and
``classify`` weighs them with the deal's ``Facts`` and the rules in ``data/causes_rules.toml``. Pure: no clock,
no I/O beyond reading the package's data files.
"""

from services.detector.domain.causes.classify import classify, rank_for_keeping, verdict
from services.detector.domain.causes.lexicon import Lexicon
from services.detector.domain.causes.model import CAUSES, Classification, Facts, Signal
from services.detector.domain.causes.rules import Rules, default_rules

__all__ = [
    "CAUSES",
    "Classification",
    "Facts",
    "Lexicon",
    "Rules",
    "Signal",
    "classify",
    "default_rules",
    "rank_for_keeping",
    "verdict",
]
