"""Rewrite the generated tables in docs/ from their sources (clv/doc_tables.py says which).

    python scripts/generate_docs.py           # rewrite stale pages
    python scripts/generate_docs.py --check   # exit 1 naming the stale pages (tests/test_docs.py runs this)
"""

import sys

from clv.doc_tables import stale_pages

check = "--check" in sys.argv[1:]
stale = stale_pages(write=not check)
for page in stale:
    print(f"{'stale' if check else 'rewrote'}: {page}")
sys.exit(1 if check and stale else 0)
