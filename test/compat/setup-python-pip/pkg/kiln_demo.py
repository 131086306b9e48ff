VALUE = "installed by pip"
