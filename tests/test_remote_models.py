"""Model folders on a remote filesystem (gs:// on Dataflow) load through Beam's FileSystems: copied to
local disk once per process. A filesystem with its own scheme (tests/fake_remote_fs.py) stands in for GCS."""

import torch

from tests.fake_remote_fs import PREFIX
from transforms.io.model_io import load_causal_lm, local_model_dir, model_sha256


def test_remote_model_is_copied_once_and_loads_the_same(tiny_model_dir):
    remote = PREFIX + str(tiny_model_dir)
    local = local_model_dir(remote)
    assert local != str(tiny_model_dir) and local_model_dir(remote) == local  # one copy per process
    assert model_sha256(remote) == model_sha256(tiny_model_dir)
    model, tokenizer = load_causal_lm(remote)
    reference, _ = load_causal_lm(tiny_model_dir)
    ids = tokenizer(["hello"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, reference(**ids).logits)
    assert local_model_dir("models/base") == "models/base"  # local paths are used in place
