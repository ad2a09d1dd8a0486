"""The admin index shows the models dashboard (oversight/templates/oversight/admin_index.html)."""
from django.contrib import admin

admin.site.index_template = "oversight/admin_index.html"
admin.site.site_header = "leadml oversight"
admin.site.site_title = "leadml"
