"""Assemble the bundled two-year Online Retail II file from the two UCI sources.

Online Retail II sheet "Year 2009-2010" (2009-12-01..2010-12-09) + Online Retail I (2010-12-01..2011-12-09),
the overlapping 2010-12-01..09 rows kept once (from the first file). Columns keep the Online Retail II
names; the adapter in clv/ingest/adapters.py maps them to the input contract.

    python scripts/build_bundled_data.py ../shared/data data/bundled/online_retail_ii.parquet
"""

import sys

import duckdb

src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(
    f"""
    copy (
        select Invoice, StockCode, Description, Quantity, InvoiceDate, Price, "Customer ID", Country
        from read_parquet('{src}/online_retail_ii/online_retail_ii_year_2009_2010.parquet')
        union all
        select InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country
        from read_parquet('{src}/online_retail/online_retail.parquet')
        where InvoiceDate >= timestamp '2010-12-10'
    ) to '{out}' (format parquet, compression zstd, compression_level 19)
    """
)
print(con.execute(f"select count(*), min(InvoiceDate), max(InvoiceDate), count(distinct \"Customer ID\") from read_parquet('{out}')").fetchall())
