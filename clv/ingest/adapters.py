"""Adapters map a known source layout onto the input contract.

An adapter is recognised by the source columns it needs and gives one SQL expression per contract column.
The Online Retail exports (UCI Online Retail I and II) are the ones the product ships with.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Adapter:
    name: str
    entity: str
    needs: frozenset[str]
    expressions: dict[str, str]  # contract column -> SQL over the source columns
    # Optional: SQL (over a relation called `src`) that derives a customers input from the same file.
    derived_customers_sql: str | None = None


def _online_retail(name: str, invoice: str, price: str, customer: str) -> Adapter:
    customer_key = f'cast(cast(cast("{customer}" as double) as bigint) as varchar)'
    return Adapter(
        name=name,
        entity="orders",
        needs=frozenset({invoice, "StockCode", "Quantity", "InvoiceDate", price, customer, "Country"}),
        expressions={
            "customer_id": customer_key,
            "order_id": f'"{invoice}"',
            "order_ts": '"InvoiceDate"',
            "product_id": '"StockCode"',
            "quantity": '"Quantity"',
            "unit_price": f'"{price}"',
        },
        # Online Retail has no customer file: the country a customer orders from most is their country.
        derived_customers_sql=f"""
            select {customer_key} as customer_id,
                   cast(null as timestamp) as signup_ts,
                   mode("Country") as country,
                   cast(null as varchar) as acquisition_channel
            from src
            where "{customer}" is not null
            group by 1
        """,
    )


ADAPTERS = [
    _online_retail("online_retail_ii", invoice="Invoice", price="Price", customer="Customer ID"),
    _online_retail("online_retail", invoice="InvoiceNo", price="UnitPrice", customer="CustomerID"),
]


def find_adapter(entity: str, columns: set[str]) -> Adapter | None:
    """The adapter for this entity whose needed columns are all present, if any."""
    for adapter in ADAPTERS:
        if adapter.entity == entity and adapter.needs <= columns:
            return adapter
    return None
