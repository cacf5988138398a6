"""Files written from the code: dvc.yaml, a project folder's dvc.yaml, docs/params.md."""
