"""Rewrite what is generated from a source of truth: the tables in docs/ (clv/doc_tables.py says which) and
customer_training_set's dbt properties (clv/training_set_schema.py).

    python scripts/generate_docs.py           # rewrite what is stale
    python scripts/generate_docs.py --check   # exit 1 naming what is stale (tests/test_docs.py runs this)
"""

import sys

from clv import training_set_schema
from clv.doc_tables import stale_pages

check = "--check" in sys.argv[1:]
stale = stale_pages(write=not check)
if training_set_schema.stale(write=not check):
    stale.append(training_set_schema.MARTS / "_training_set.yml")
for page in stale:
    print(f"{'stale' if check else 'rewrote'}: {page}")
sys.exit(1 if check and stale else 0)
