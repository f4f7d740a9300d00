"""Performer (FAVOR+) and AFT protein language models.

``import protein_performer`` stays cheap (no torch, no transformers). The ``transformers`` Auto
classes over exported folders are registered by ``import protein_performer.hf`` (importing
transformers takes seconds), or here when the caller has already imported transformers.
"""

import sys as _sys

if "transformers.modeling_utils" in _sys.modules:  # already paid for: register now
    import protein_performer.hf  # noqa: F401,E402
