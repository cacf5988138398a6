"""Names of the scoring judges, as they appear in judgments, params and reports."""

VERIFIER = "ifeval_verifier"
LLM_JUDGE = "llm_judge"
REWARD_MODEL = "reward_model"
SCORING_JUDGES = (VERIFIER, LLM_JUDGE, REWARD_MODEL)
MODEL_JUDGES = (LLM_JUDGE, REWARD_MODEL)
