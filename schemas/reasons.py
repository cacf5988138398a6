"""Why a generation ended, and why curation rejected a candidate: the words every record uses.

A curation step declares which of these it applies (transforms/curation/chain.py); a heuristic
judge declares the one its failure stands for (transforms/judges/heuristics.py).
"""

# finish_reason of a candidate
STOP = "stop"  # the model ended its answer
LENGTH = "length"  # the answer hit max_new_tokens
PROMPT_TOO_LONG = "prompt_too_long"  # not generated: the prompt exceeds max_prompt_tokens
FINISH_REASONS = (STOP, LENGTH, PROMPT_TOO_LONG)

# origin of a candidate
SAMPLED = "sampled"  # the generator answered the prompt
REVISED = "revised"  # the generator revised a failed answer, told which checks it failed
ORIGINS = (SAMPLED, REVISED)

# reason of a rejected row
UNJUDGED = "unjudged"
JUDGE_ERROR = "judge_error"
EMPTY = "empty"
ECHOES_PROMPT = "echoes_prompt"
TRUNCATED = "truncated"
LENGTH_OUT_OF_BOUNDS = "length_out_of_bounds"
REPETITIVE = "repetitive"
STRAY_QUOTE = "stray_quote"
UNBALANCED = "unbalanced"
TEMPLATE_MARKUP = "template_markup"
CONTAMINATED = "contaminated"
UNVERIFIABLE = "unverifiable"
BELOW_THRESHOLD = "below_threshold"
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"
SEMANTIC_DUPLICATE = "semantic_duplicate"
OVER_PROMPT_CAP = "over_prompt_cap"
OVER_TYPE_CAP = "over_type_cap"
BELOW_TOP_FRACTION = "below_top_fraction"
NOT_SAMPLED = "not_sampled"  # controls only (curate.control): outside the random sample
