"""A Beam filesystem with its own URL scheme (`fakegcs://`) backed by local files: Beam picks it by
scheme exactly as it picks GCS for gs://, so code that works with it goes through FileSystems."""

from __future__ import annotations

from apache_beam.io.localfilesystem import LocalFileSystem

PREFIX = "fakegcs://"
_LOCAL = LocalFileSystem(None)


def _strip(path: str) -> str:
    return path.removeprefix(PREFIX)


class FakeRemoteFileSystem(LocalFileSystem):
    @classmethod
    def scheme(cls):
        return "fakegcs"

    def join(self, basepath, *paths):
        return PREFIX + _LOCAL.join(_strip(basepath), *paths)

    def split(self, path):
        head, tail = _LOCAL.split(_strip(path))
        return PREFIX + head, tail

    def mkdirs(self, path):
        return _LOCAL.mkdirs(_strip(path))

    def match(self, patterns, limits=None):
        results = _LOCAL.match([_strip(p) for p in patterns], limits)
        for result in results:
            for entry in result.metadata_list:
                entry.path = PREFIX + entry.path
        return results

    def create(self, path, *args, **kwargs):
        return _LOCAL.create(_strip(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return _LOCAL.open(_strip(path), *args, **kwargs)

    def copy(self, sources, destinations):
        return _LOCAL.copy([_strip(p) for p in sources], [_strip(p) for p in destinations])

    def rename(self, sources, destinations):
        return _LOCAL.rename([_strip(p) for p in sources], [_strip(p) for p in destinations])

    def exists(self, path):
        return _LOCAL.exists(_strip(path))

    def size(self, path):
        return _LOCAL.size(_strip(path))

    def last_updated(self, path):
        return _LOCAL.last_updated(_strip(path))

    def checksum(self, path):
        return _LOCAL.checksum(_strip(path))

    def metadata(self, path):
        entry = _LOCAL.metadata(_strip(path))
        entry.path = PREFIX + entry.path
        return entry

    def delete(self, paths):
        return _LOCAL.delete([_strip(p) for p in paths])
