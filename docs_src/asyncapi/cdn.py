from fastapi_streaming import StreamingAPI
from fastapi_streaming.asyncapi.docs import CDN_CSS_URL, CDN_JS_URL

streaming = StreamingAPI(asyncapi_js_url=CDN_JS_URL, asyncapi_css_url=CDN_CSS_URL)
