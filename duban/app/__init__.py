"""The application layer: rounds, the scheduler service, replays and rule tests.

The CLI (`duban.cli`) and the web (`duban.web`) are two doors onto this layer; they import it and
never each other, and hold no business logic of their own.
"""
