"""`python -m pipelines.derived` (`make docs`): rewrites every file derived from the code: params.yaml and
dvc.yaml, each example's, and docs/params.md."""

from __future__ import annotations

from pipelines import REPO
from pipelines.derived import dvc_yaml, params_doc, params_yaml

EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/params.yaml"))


def main() -> None:
    written = {REPO / "params.yaml": params_yaml.render(REPO / "params.yaml"),
               REPO / "dvc.yaml": dvc_yaml.repository_dvc_yaml(), params_doc.OUT: params_doc.render()}
    for folder in EXAMPLES:
        written |= {folder / "params.yaml": params_yaml.render(folder / "params.yaml"),
                    folder / "dvc.yaml": dvc_yaml.project_dvc_yaml(folder)}
    for path, text in written.items():
        path.write_text(text)
        print(path.relative_to(REPO))


if __name__ == "__main__":
    main()
