"""CLV platform: land orders, build features in dbt, train and score customer lifetime value."""

__version__ = "0.1.0"
