"""Commands over a project's results: a study of variants and seeds, paired comparisons."""
