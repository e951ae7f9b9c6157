"""The stock-quotes example app of the README."""
