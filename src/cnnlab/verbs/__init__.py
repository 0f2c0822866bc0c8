"""The verbs beyond training (`cnnlab <verb> key=value ...`): fetch, describe, inspect,
evaluate, predict, export, report."""
