"""Plain-Python machine learning of the lakehouse (feature matrices, training, evaluation, promotion
rules, scoring): no Dagster imports here. Filled by the modelling issues."""
