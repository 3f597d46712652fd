"""The model being compiled, as sqlfluff's jinja templater sees it: a few documented columns stand in
for the YAML's (customer_features selects its documented columns, `model.columns`)."""

columns = {"customer_id": {}, "cutoff_date": {}, "days_since_last_order": {}}
