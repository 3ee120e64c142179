"""crypto-mine's HTTP api."""

# The package whose lua/ folder holds the api's Redis scripts (crypto_mine.common.scripts.load).
SCRIPTS = __name__
