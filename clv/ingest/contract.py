"""The input contract: which columns each input file must carry, and their types.

Each entity (orders, customers, events) is a set of columns with a warehouse type. Required columns must
be present; optional ones are filled with NULL when absent. Values that do not cast to the column type
are a contract violation reported with the file, column, rule and row count.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # DuckDB type the raw table stores
    required: bool
    description: str


@dataclass(frozen=True)
class Entity:
    name: str
    columns: tuple[Column, ...]
    # Personal data: never stored in clear text (hashed with a key, or dropped).
    pii_columns: tuple[str, ...] = ()
    # The column that dates a row: a load covers the days it holds (its row count is measured per day).
    dated_by: str | None = None

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


ORDERS = Entity(
    "orders",
    (
        Column("customer_id", "VARCHAR", True, "customer key (lines without one are quarantined)"),
        Column("order_id", "VARCHAR", True, "order id; an order has one or more lines"),
        Column("order_ts", "TIMESTAMP", True, "when the order was placed"),
        Column("product_id", "VARCHAR", False, "product (SKU)"),
        Column("quantity", "DOUBLE", True, "units; negative = return"),
        Column("unit_price", "DOUBLE", True, "price per unit; negative lines are quarantined, zero-priced lines "
                                                  "carry no revenue"),
        Column("line_id", "VARCHAR", False, "the source's id of the line (OLTP tables): a line extracted "
                                            "again with other values lands as a new version of it (see "
                                            "\"What the warehouse knew when\" below)"),
        Column("updated_at", "TIMESTAMP", False, "when the source changed the line: a new version is valid "
                                                 "from then (else from its load time)"),
        Column("deleted_at", "TIMESTAMP", False, "tombstone: the line (by `line_id`) stops counting from this time on"),
    ),
    dated_by="order_ts",
)

CUSTOMERS = Entity(
    "customers",
    (
        Column("customer_id", "VARCHAR", True, "customer key (a pseudonymous id, kept as is)"),
        Column("signup_ts", "TIMESTAMP", False, "sign-up time"),
        Column("country", "VARCHAR", False, "country"),
        Column("acquisition_channel", "VARCHAR", False, "channel that acquired the customer"),
        Column("updated_at", "TIMESTAMP", False, "when the source changed the customer: a new version is "
                                                 "valid from then (else from its load time)"),
    ),
    pii_columns=("email", "name", "phone", "address"),
    dated_by="signup_ts",
)

EVENTS = Entity(
    "events",
    (
        Column("customer_id", "VARCHAR", True, "customer key"),
        Column("session_id", "VARCHAR", True, "session id"),
        Column("event_ts", "TIMESTAMP", True, "event time"),
        Column("event_type", "VARCHAR", True, "`session_start`, `page_view`, `product_view`, `search`, `add_to_cart`, "
                                                  "`checkout`, `purchase`"),
        Column("session_duration_s", "DOUBLE", False, "session length in seconds"),
    ),
    dated_by="event_ts",
)

ENTITIES = {e.name: e for e in (ORDERS, CUSTOMERS, EVENTS)}


class ContractError(ValueError):
    """An input file breaks the input contract. The message names file, column, rule and row count."""
