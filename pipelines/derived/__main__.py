"""`python -m pipelines.derived` (`make docs`): rewrites every file derived from the code: dvc.yaml, each
example's dvc.yaml and docs/params.md."""

from __future__ import annotations

from pipelines.derived import dvc_yaml, params_doc
from pipelines.derived.imports import REPO

EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/params.yaml"))


def main() -> None:
    written = {REPO / "dvc.yaml": dvc_yaml.repository_dvc_yaml(), params_doc.OUT: params_doc.render()}
    written |= {folder / "dvc.yaml": dvc_yaml.project_dvc_yaml(folder) for folder in EXAMPLES}
    for path, text in written.items():
        path.write_text(text)
        print(path.relative_to(REPO) if path.is_absolute() else path)


if __name__ == "__main__":
    main()
