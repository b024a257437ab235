"""The built-in demo shop: a simulator of customers, orders, behaviour and one randomised campaign, with the truth.

It stands outside the library's layers (nothing in features/, modeling/, training/, serving/ or analytics/
imports it); the demo, the tests and the benchmarks do.
"""
