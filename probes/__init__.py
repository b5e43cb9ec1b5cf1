"""encoderzoo.probes: kNN, linear, few-shot and data-curation probes on embeddings.

Installed as ``encoderzoo.probes`` (the bare name ``probes`` belongs to an unrelated PyPI package).
The probe estimators land with their own issue.
"""
