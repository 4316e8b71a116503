from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0010_chat_default_message"),
    ]

    operations = [
        migrations.AddField(
            model_name="requestlog",
            name="usage_estimated",
            field=models.BooleanField(
                db_default=False,
                default=False,
                help_text="The provider did not report the usage (a stream cut short, or a server that never "
                "sends it): the tokens were counted from the prompt and the text sent, four characters a token.",
            ),
        ),
    ]
