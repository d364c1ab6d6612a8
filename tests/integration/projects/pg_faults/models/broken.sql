-- A SQL syntax error (PostgreSQL: syntax error at or near "selec"): deterministic.
selec 1 as id
