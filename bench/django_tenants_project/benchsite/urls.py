"""No views: the project only runs migrations."""

urlpatterns: list = []
