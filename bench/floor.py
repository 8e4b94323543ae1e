"""The floor of a pod-start step in Python: import psycopg, connect, ``select 1``, exit.

    DATABASE_URL=postgresql://... python bench/floor.py

No init step written in Python with this driver can cost less on every pod start.
"""

import os

import psycopg

with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    conn.execute("select 1").fetchone()
