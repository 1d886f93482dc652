"""The rows afgen ships: each module registers its stages and methods through the public
method API (learning/method_api.py), exactly as a plugin package would."""
