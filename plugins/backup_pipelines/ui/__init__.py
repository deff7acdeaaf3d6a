"""The Backups page inside the Airflow UI: an Airflow plugin (``plugin``) mounting a read-only FastAPI app
(``app``) whose pages (``pages``, ``templates/``) show what the catalog holds (``service``): every
dataset against its RPO, each dataset's chains and drills (``timeline``, ``drills``), and the cost of
keeping it all (``cost``)."""
