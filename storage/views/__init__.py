"""Wire views of stored rows: what clients get, built where handlers (answers) and workers
(live events) can both reach them."""
