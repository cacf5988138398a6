"""Model folders on a remote filesystem (gs:// on Dataflow) load through Beam's FileSystems: copied to
local disk once per process. A loopback filesystem with its own scheme stands in for GCS."""

import torch
from apache_beam.io.localfilesystem import LocalFileSystem

from transforms.model_io import load_causal_lm, local_model_dir, model_sha256

PREFIX = "fakegcs://"


class FakeRemoteFileSystem(LocalFileSystem):
    """Serves local files under the fakegcs:// scheme; Beam finds it by its scheme, as it finds GCS."""

    @classmethod
    def scheme(cls):
        return "fakegcs"

    def join(self, basepath, *paths):
        return PREFIX + super().join(basepath.removeprefix(PREFIX), *paths)

    def split(self, path):
        head, tail = super().split(path.removeprefix(PREFIX))
        return PREFIX + head, tail

    def match(self, patterns, limits=None):
        results = LocalFileSystem(None).match([p.removeprefix(PREFIX) for p in patterns], limits)
        for result in results:
            for entry in result.metadata_list:
                entry.path = PREFIX + entry.path
        return results

    def open(self, path, *args, **kwargs):
        return super().open(path.removeprefix(PREFIX), *args, **kwargs)


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
