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

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


ORDERS = Entity(
    "orders",
    (
        Column("customer_id", "VARCHAR", True, "customer key; NULL rows are dropped in staging"),
        Column("order_id", "VARCHAR", True, "order (invoice) id; one order has many lines"),
        Column("order_ts", "TIMESTAMP", True, "when the order was placed"),
        Column("product_id", "VARCHAR", False, "product (SKU) on the line"),
        Column("quantity", "DOUBLE", True, "units on the line; negative = return"),
        Column("unit_price", "DOUBLE", True, "price per unit in the shop currency"),
        Column("line_id", "VARCHAR", False, "the source's id of the line, when it has one (OLTP tables): "
                                            "a line landed again with other values is a new version of it"),
        Column("updated_at", "TIMESTAMP", False, "when the source changed the line: a new version is valid "
                                                 "from then (else from its load time)"),
        Column("deleted_at", "TIMESTAMP", False, "tombstone: the line stops counting from this time on"),
    ),
)

CUSTOMERS = Entity(
    "customers",
    (
        Column("customer_id", "VARCHAR", True, "customer key"),
        Column("signup_ts", "TIMESTAMP", False, "when the customer signed up"),
        Column("country", "VARCHAR", False, "customer country"),
        Column("acquisition_channel", "VARCHAR", False, "marketing channel that acquired the customer"),
        Column("updated_at", "TIMESTAMP", False, "when the source changed the customer: a new version is "
                                                 "valid from then (else from its load time)"),
    ),
    pii_columns=("email", "name", "phone", "address"),
)

EVENTS = Entity(
    "events",
    (
        Column("customer_id", "VARCHAR", True, "customer key"),
        Column("session_id", "VARCHAR", True, "web/app session id"),
        Column("event_ts", "TIMESTAMP", True, "when the event happened"),
        Column("event_type", "VARCHAR", True, "session_start, page_view, add_to_cart, purchase, ..."),
        Column("session_duration_s", "DOUBLE", False, "session length in seconds"),
    ),
)

ENTITIES = {e.name: e for e in (ORDERS, CUSTOMERS, EVENTS)}


class ContractError(ValueError):
    """An input file breaks the input contract. The message names file, column, rule and row count."""
