"""The model being compiled, as sqlfluff's jinja templater sees it: a few documented columns stand in
for the YAML's (customer_features selects its documented columns, `model.columns`, cast to their types)."""

columns = {"customer_id": {"data_type": "text"}, "cutoff_date": {"data_type": "date"},
           "days_since_last_order": {"data_type": "bigint"}}
