"""Database init job for a Prisma/PostgreSQL Shopify app: wait, lock, apply, record, log, exit."""

__version__ = "0.1.0"
