from fastapi_streaming import WebSubSettings

settings = WebSubSettings(allow_networks=("10.20.0.0/16",))
