"""micmco: Mutual Information Constraints for Monte-Carlo Objectives (Melis, György, Blunsom)."""

__version__ = "0.1.0"
