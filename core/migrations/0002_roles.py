"""Create the role groups Moderator, Safety lead and Admin with their model permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    from core.roles import sync_roles

    # Permissions are normally created after all migrations (post_migrate); create them now so
    # the groups get them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("principles", "0002_load_registry"),
        ("moderation", "0001_initial"),
    ]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
