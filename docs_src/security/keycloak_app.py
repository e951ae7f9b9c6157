from fastapi_streaming.security import create_authorizer

authorizer = create_authorizer("keycloak", realm="market", server_url="https://sso.example.com")
